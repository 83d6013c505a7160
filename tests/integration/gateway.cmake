# diode-gateway, the whole appliance, on the network test bed (root,
# namespaces; label netbed, run serially).
diode_netbed_test(gateway.netbed gateway_netbed.sh TIMEOUT 240
  ENVIRONMENT NB_WATCHDOG_SECONDS=220 "GATEWAY=$<TARGET_FILE:diode-gateway>"
              "DIODECTL=$<TARGET_FILE:diodectl>")
