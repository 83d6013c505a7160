# diode-socksify (docs/socksify.md): unmodified programs under the wrapper
# on the network test bed, with gw's sockd as the only way out of lan.
# Not in the sanitizer build: an ASan-instrumented library cannot be
# preloaded into the uninstrumented programs under test (the ASan runtime
# must come first); the unit tests (socksify_test) do run there.
if(COMMAND diode_netbed_test AND NOT DIODE_SANITIZE)
  diode_netbed_test(socksify.netbed socksify_netbed.sh TIMEOUT 240
    ENVIRONMENT "SOCKD=$<TARGET_FILE:sockd>" "SOCKSIFY=$<TARGET_FILE:diode-socksify>")
endif()
