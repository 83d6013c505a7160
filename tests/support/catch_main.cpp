// Catch2's implementation in its own object, built without -Werror: its
// <regex> use trips g++ 12's -Wmaybe-uninitialized at -O1 with sanitizers.
#define CATCH_CONFIG_MAIN
#include <catch2/catch.hpp>
