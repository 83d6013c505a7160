# diode-resolver on the network test bed (tests/integration/resolver_netbed.sh).
diode_netbed_test(resolver.netbed resolver_netbed.sh TIMEOUT 240
  ENVIRONMENT NB_WATCHDOG_SECONDS=220)
