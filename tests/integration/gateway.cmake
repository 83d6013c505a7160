# diode-gateway, the whole appliance, on the network test bed (root,
# namespaces; label netbed, run serially).
diode_netbed_test(gateway.netbed gateway_netbed.sh TIMEOUT 240
  ENVIRONMENT NB_WATCHDOG_SECONDS=220 "GATEWAY=$<TARGET_FILE:diode-gateway>"
              "DIODECTL=$<TARGET_FILE:diodectl>" "SOCKD_CHECK=$<TARGET_FILE:sockd-check>")

# A reload whose check is slow: status, restarts and signals go on meanwhile,
# one reload at a time, gateway.check_timeout bounds it.
diode_netbed_test(gateway.reload gateway_reload.sh TIMEOUT 120
  ENVIRONMENT NB_WATCHDOG_SECONDS=100 "GATEWAY=$<TARGET_FILE:diode-gateway>"
              "DIODECTL=$<TARGET_FILE:diodectl>" "SOCKD=$<TARGET_FILE:sockd>")

# The README's first command, minus the build: scripts/demo.sh runs the
# gateway on its built-in configuration with the demo internet, and curl and
# dig through it must answer. Root (a namespace); fixed loopback ports, so serial.
add_test(NAME gateway.demo COMMAND ${DIODE_BASH} ${PROJECT_SOURCE_DIR}/scripts/demo.sh ${PROJECT_BINARY_DIR})
set_tests_properties(gateway.demo PROPERTIES
  LABELS netbed RUN_SERIAL TRUE TIMEOUT 120 ENVIRONMENT "DIODE_DEMO_CHECK=1")
