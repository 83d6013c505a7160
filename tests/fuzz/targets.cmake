# diode_fuzz_target(<name> <source> <libraries...>)
