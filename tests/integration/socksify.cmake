# diode-socksify (docs/socksify.md): unmodified programs under the wrapper
# on the network test bed, with gw's sockd as the only way out of lan.
if(COMMAND diode_netbed_test)
  diode_netbed_test(socksify.netbed socksify_netbed.sh TIMEOUT 240
    ENVIRONMENT "SOCKD=$<TARGET_FILE:sockd>" "SOCKSIFY=$<TARGET_FILE:diode-socksify>")
endif()
