# Manual pages, made with pandoc from docs/ (docs/packaging.md, "Manual pages"): each
# docs/man/PAGE.SECTION.md (NAME, SYNOPSIS, FILES, SEE ALSO) around the
# body of one page of docs/, through docs/man/man.lua; then gzip -9n.
find_program(DIODE_PANDOC pandoc)
if(NOT DIODE_PANDOC)
  message(WARNING "pandoc not found: no manual pages (bash scripts/setup.sh installs it); "
                  "the package.man test fails")
  return()
endif()

set(diode_man_src ${PROJECT_SOURCE_DIR}/docs/man)
set(diode_man_out ${PROJECT_BINARY_DIR}/man)
# page:section:body page of docs/ (nothing after the second colon: the man
# source says everything)
set(diode_man_pages
  diode-gateway:8:gateway.md
  diodectl:8:
  sockd:8:sockd.md
  diode-resolver:8:resolver.md
  sockd-check:1:sockd-check.md
  diode-socksify:1:socksify.md
  gateway.toml:5:configuration.md
  sockd.conf:5:sockd.conf.md
  sockd.route:5:sockd.route.md
  socks.conf:5:socks.conf.md
  diode-users:5:users.md)

set(diode_man_outputs "")
foreach(spec IN LISTS diode_man_pages)
  string(REPLACE ":" ";" entry "${spec}:")
  list(GET entry 0 page)
  list(GET entry 1 section)
  list(GET entry 2 body)
  set(inputs ${diode_man_src}/${page}.${section}.md)
  if(body)
    list(APPEND inputs ${PROJECT_SOURCE_DIR}/docs/${body})
  endif()
  string(TOUPPER "${page}" title)
  set(out ${diode_man_out}/man${section}/${page}.${section})
  add_custom_command(OUTPUT ${out}.gz
    COMMAND ${CMAKE_COMMAND} -E make_directory ${diode_man_out}/man${section}
    COMMAND ${DIODE_PANDOC} -f gfm -t man -s --lua-filter ${diode_man_src}/man.lua
            -H ${diode_man_src}/man-header.roff
            -M title=${title} -M section=${section} -M date=
            -M "footer=Diode ${PROJECT_VERSION}" -M "header=Diode manual"
            -o ${out} ${inputs}
    COMMAND ${DIODE_GZIP} -9nf ${out}
    DEPENDS ${inputs} ${diode_man_src}/man.lua ${diode_man_src}/man-header.roff
    COMMENT "man page ${page}(${section})" VERBATIM)
  list(APPEND diode_man_outputs ${out}.gz)
  install(FILES ${out}.gz DESTINATION ${CMAKE_INSTALL_MANDIR}/man${section})
endforeach()
add_custom_target(diode_man ALL DEPENDS ${diode_man_outputs})
