# Build policy as INTERFACE targets: warnings, hardening, Asio settings.

add_library(diode_warnings INTERFACE)
target_compile_options(diode_warnings INTERFACE
  -Wall -Wextra -Wpedantic -Wshadow -Wconversion -Wsign-conversion
  -Wnon-virtual-dtor -Wold-style-cast -Woverloaded-virtual
  -Wimplicit-fallthrough -Wformat=2 -Wnull-dereference
  $<$<BOOL:${DIODE_WERROR}>:-Werror>)

add_library(diode_hardening INTERFACE)
target_compile_options(diode_hardening INTERFACE
  -fstack-protector-strong -fstack-clash-protection -fcf-protection
  $<$<NOT:$<CONFIG:Debug>>:-D_FORTIFY_SOURCE=2>)
target_link_options(diode_hardening INTERFACE -Wl,-z,relro -Wl,-z,now)

if(DIODE_SANITIZE)
  # Global, so every translation unit is instrumented the same way.
  add_compile_options(-fsanitize=address,undefined -fno-sanitize-recover=all
                      -fno-omit-frame-pointer)
  add_link_options(-fsanitize=address,undefined)
endif()

if(DIODE_FUZZ)
  # The parsers' objects are instrumented for coverage; fuzz targets link
  # libFuzzer's main.
  add_compile_options(-fsanitize=fuzzer-no-link,address,undefined -fno-omit-frame-pointer)
  add_link_options(-fsanitize=address,undefined)
endif()

# Every library and executable of the project links this.
add_library(diode_policy INTERFACE)
target_link_libraries(diode_policy INTERFACE diode_warnings diode_hardening)
