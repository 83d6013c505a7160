diode_netbed_test(dnssec.netbed dnssec_netbed.sh TIMEOUT 180 ENVIRONMENT NB_WATCHDOG_SECONDS=160)
