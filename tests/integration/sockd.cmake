# sockd's loopback integration tests: real clients (curl, PySocks,
# proxychains4) against the real daemon on 127.0.0.1, ports chosen by the
# kernel, so they run in parallel with anything. Debian's python3 (with
# python3-socks) runs them; SOCKD names the binary under test. None of them
# skips: CI runs as root with every tool installed, so a missing one fails.
find_program(DIODE_SYSTEM_PYTHON python3 PATHS /usr/bin NO_DEFAULT_PATH)
if(NOT DIODE_SYSTEM_PYTHON)
  find_program(DIODE_SYSTEM_PYTHON python3 REQUIRED)
endif()

# Extra arguments: more environment settings (VAR=value).
function(diode_sockd_test name script)
  add_test(NAME ${name} COMMAND ${DIODE_SYSTEM_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/${script})
  set_tests_properties(${name} PROPERTIES
    LABELS integration
    TIMEOUT 120
    ENVIRONMENT "SOCKD=$<TARGET_FILE:sockd>;SOCKD_CHECK=$<TARGET_FILE:sockd-check>;PYTHONDONTWRITEBYTECODE=1;DIODE_SANITIZE=${DIODE_SANITIZE};${ARGN}")
endfunction()

# Each test on both I/O paths (docs/sockd.md, "I/O paths"): sockd.NAME as
# written (io = "auto": io_uring where the kernel allows it, as on CI), and
# sockd_epoll.NAME with [sockd] io = "epoll" (the harness writes SOCKD_IO).
function(diode_sockd_both name script)
  diode_sockd_test(sockd.${name} ${script})
  diode_sockd_test(sockd_epoll.${name} ${script} SOCKD_IO=epoll)
endfunction()

# On the ring, the accept is multishot where the kernel runs socket commands
# (Linux 6.7; the client's address is read by one), else single-shot per
# session. sockd_single.NAME runs the tests where accepting matters with
# DIODE_URING_NO_SOCKET_CMD=1: the single-shot accepts on any kernel.
function(diode_sockd_single name script)
  diode_sockd_test(sockd_single.${name} ${script} DIODE_URING_NO_SOCKET_CMD=1)
endfunction()

diode_sockd_both(clients sockd_clients.py)
diode_sockd_both(badinput sockd_badinput.py)
diode_sockd_both(modes sockd_modes.py)
diode_sockd_both(bind_udp sockd_bind_udp.py)
diode_sockd_both(hooks sockd_hooks.py)
diode_sockd_both(identd sockd_identd.py)
diode_sockd_both(limits sockd_limits.py)
diode_sockd_both(control sockd_control.py)
diode_sockd_both(names sockd_names.py)
diode_sockd_both(limits64 sockd_limits64.py)
diode_sockd_both(auth sockd_auth.py)
diode_sockd_both(logflood sockd_logflood.py)
diode_sockd_both(bulk sockd_bulk.py)
diode_sockd_both(quiet sockd_quiet.py)
diode_sockd_single(clients sockd_clients.py)
diode_sockd_single(badinput sockd_badinput.py)
diode_sockd_single(limits sockd_limits.py)
diode_sockd_single(control sockd_control.py)
diode_sockd_single(limits64 sockd_limits64.py)
# The choice of the I/O path itself: uring, epoll, auto's fallback under seccomp.
diode_sockd_test(sockd.io sockd_io.py)
# The comparer of sockd.netbed_pipeline, shown to fail on each kind of difference.
diode_sockd_test(sockd.pipeline_compare pipeline_compare_test.py)

# On the network test bed (root, namespaces; label netbed, run serially).
if(COMMAND diode_netbed_test)
  diode_netbed_test(sockd.netbed sockd_netbed.sh ENVIRONMENT "SOCKD=$<TARGET_FILE:sockd>")
  diode_netbed_test(sockd.netbed_kernel sockd_netbed_kernel.sh ENVIRONMENT "SOCKD=$<TARGET_FILE:sockd>")
  diode_netbed_test(sockd.netbed_pipeline sockd_netbed_pipeline.sh ENVIRONMENT
                    "SOCKD=$<TARGET_FILE:sockd>" "SOCKD_CHECK=$<TARGET_FILE:sockd-check>")
endif()

# The process contract (privilege drop, sockets handed down, sd_notify,
# SIGHUP, --version) for sockd and diode-resolver started as root.
add_test(NAME process.contract
         COMMAND ${DIODE_SYSTEM_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/process_contract.py)
set_tests_properties(process.contract PROPERTIES
  LABELS integration
  TIMEOUT 180
  ENVIRONMENT "SOCKD=$<TARGET_FILE:sockd>;RESOLVER=$<TARGET_FILE:diode-resolver>;PYTHONDONTWRITEBYTECODE=1")
