diode_netbed_test(dnssec.netbed dnssec_netbed.sh TIMEOUT 180 ENVIRONMENT NB_WATCHDOG_SECONDS=160)
diode_netbed_test(dnssec.rfc5011 dnssec_rfc5011.sh TIMEOUT 180 ENVIRONMENT NB_WATCHDOG_SECONDS=160)
