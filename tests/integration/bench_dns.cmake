# bench.dns_check: `bash bench/dns.sh --check`, as docs/performance.md
# ("Resolver") shows it: the cold-cache name list, the benchmark's zones and
# the Unbound and diode-resolver configurations are valid. No root, no bed.
find_program(DIODE_UNBOUND_CHECKCONF unbound-checkconf)
find_program(DIODE_NSD_CHECKZONE nsd-checkzone)
if(DIODE_UNBOUND_CHECKCONF AND DIODE_NSD_CHECKZONE)
  set(_bench_dns_env "OUT=${CMAKE_CURRENT_BINARY_DIR}/bench-dns-check")
  if(TARGET diode-resolver)
    list(APPEND _bench_dns_env "DIODE_RESOLVER=$<TARGET_FILE:diode-resolver>")
  endif()
  add_test(NAME bench.dns_check
           COMMAND ${DIODE_BASH} ${PROJECT_SOURCE_DIR}/bench/dns.sh --check)
  set_tests_properties(bench.dns_check PROPERTIES
    LABELS integration
    TIMEOUT 60
    PASS_REGULAR_EXPRESSION "bench/dns.sh --check: [0-9]+ names, zones and configurations OK"
    ENVIRONMENT "${_bench_dns_env}")
endif()
