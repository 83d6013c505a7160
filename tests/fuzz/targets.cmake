# diode_fuzz_target(<name> <source> <libraries...>)
diode_fuzz_target(socks_handshake socks_handshake_fuzz.cpp diode::sockd_proto)
diode_fuzz_target(socks_udp socks_udp_fuzz.cpp diode::sockd_proto)
diode_fuzz_target(config config_fuzz.cpp diode::platform)
