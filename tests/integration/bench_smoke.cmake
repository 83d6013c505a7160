# bench.socks_load_smoke: the socks_load example of docs/performance.md run
# against microsocks on loopback, and the bench/conf relay configurations
# checked (bench_smoke.sh). Only when the benchmarks
# are built (the asan preset leaves them out).
if(DIODE_BENCH AND NOT DIODE_FUZZ)
  add_test(NAME bench.socks_load_smoke COMMAND ${DIODE_BASH} ${CMAKE_CURRENT_SOURCE_DIR}/bench_smoke.sh)
  set_tests_properties(bench.socks_load_smoke PROPERTIES
    LABELS integration
    TIMEOUT 30
    SKIP_RETURN_CODE 77
    ENVIRONMENT "SOCKS_LOAD=$<TARGET_FILE:socks_load>;SOCKD=$<TARGET_FILE:sockd>;DIODE_SOURCE_DIR=${PROJECT_SOURCE_DIR}")
endif()

# bench.socks_pairs: bench/socks.sh's PAIRS mode, small, its table checked
# against the runs it printed (bench_pairs.sh).
if(DIODE_BENCH AND NOT DIODE_FUZZ)
  add_test(NAME bench.socks_pairs COMMAND ${DIODE_BASH} ${CMAKE_CURRENT_SOURCE_DIR}/bench_pairs.sh)
  set_tests_properties(bench.socks_pairs PROPERTIES
    LABELS integration
    TIMEOUT 180
    RUN_SERIAL TRUE
    ENVIRONMENT "SOCKD=$<TARGET_FILE:sockd>;DIODE_SOURCE_DIR=${PROJECT_SOURCE_DIR};DIODE_BUILD_DIR=${PROJECT_BINARY_DIR}")
endif()
