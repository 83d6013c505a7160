# diode-resolver on the network test bed (tests/integration/resolver_netbed.sh).
diode_netbed_test(resolver.netbed resolver_netbed.sh TIMEOUT 240
  ENVIRONMENT NB_WATCHDOG_SECONDS=220)

# The examples of docs/resolver.md, run as they stand (loopback only).
add_test(NAME resolver.doc_example
  COMMAND ${DIODE_BASH} ${CMAKE_CURRENT_SOURCE_DIR}/resolver_doc_example.sh)
set_tests_properties(resolver.doc_example PROPERTIES
  LABELS integration
  TIMEOUT 120
  ENVIRONMENT "DIODE_SOURCE_DIR=${PROJECT_SOURCE_DIR};DIODE_BINARY_DIR=${PROJECT_BINARY_DIR}")

# The resolver attacked on loopback, in a network namespace of its own
# (tests/integration/resolver_abuse.sh; needs root, as CI has).
foreach(check forged logflood tcp)
  add_test(NAME resolver.abuse.${check}
    COMMAND ${DIODE_BASH} ${CMAKE_CURRENT_SOURCE_DIR}/resolver_abuse.sh ${check})
  set_tests_properties(resolver.abuse.${check} PROPERTIES
    LABELS integration
    TIMEOUT 120
    ENVIRONMENT "DIODE_SOURCE_DIR=${PROJECT_SOURCE_DIR};DIODE_BINARY_DIR=${PROJECT_BINARY_DIR}")
endforeach()

# The cache written at stop and read back at start (resolver.cache_file),
# on the network test bed (tests/integration/resolver_persist.sh).
diode_netbed_test(resolver.persist resolver_persist.sh TIMEOUT 180
  ENVIRONMENT NB_WATCHDOG_SECONDS=160)
