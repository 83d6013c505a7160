# Run by cpack after each generator (CPACK_POST_BUILD_SCRIPTS): finishes the
# -dbgsym package that CPack's DEB generator made beside each .deb, the way
# debhelper's dh_strip makes one (docs/packaging.md, "Debug symbols"):
#   - DEBIAN/md5sums with paths inside the package (CMake 3.25 writes the
#     absolute paths of its staging directory, which dpkg --verify and
#     lintian reject);
#   - the .debug files 0644, not executable (objcopy keeps the binary's mode);
#   - /usr/share/doc/diode-dbgsym -> diode: the copyright and changelog are
#     the package's it depends on (= its version), as debhelper does.
# Reproducible: every mtime is clamped to SOURCE_DATE_EPOCH when it is set.
foreach(deb IN LISTS CPACK_PACKAGE_FILES)
  if(NOT deb MATCHES "^(.*)/([^/_]+)_([^/]+)\\.deb$")
    continue()
  endif()
  set(dir ${CMAKE_MATCH_1})
  set(name ${CMAKE_MATCH_2})
  set(ddeb ${dir}/${name}-dbgsym_${CMAKE_MATCH_3}.ddeb)
  if(NOT EXISTS ${ddeb})
    continue()
  endif()
  set(raw ${dir}/_dbgsym_fixup)
  file(REMOVE_RECURSE ${raw})
  execute_process(COMMAND dpkg-deb --raw-extract ${ddeb} ${raw} RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "dbgsym.cmake: dpkg-deb --raw-extract ${ddeb} failed")
  endif()
  file(GLOB_RECURSE debug_files RELATIVE ${raw} ${raw}/usr/lib/debug/*)
  list(SORT debug_files)
  set(md5sums "")
  foreach(f IN LISTS debug_files)
    file(CHMOD ${raw}/${f} PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ)
    file(MD5 ${raw}/${f} sum)
    string(APPEND md5sums "${sum}  ${f}\n")
  endforeach()
  file(WRITE ${raw}/DEBIAN/md5sums "${md5sums}")
  file(MAKE_DIRECTORY ${raw}/usr/share/doc)
  file(CREATE_LINK ${name} ${raw}/usr/share/doc/${name}-dbgsym SYMBOLIC)
  if(DEFINED ENV{SOURCE_DATE_EPOCH})
    execute_process(COMMAND find ${raw} -exec touch --no-dereference --date=@$ENV{SOURCE_DATE_EPOCH} {} +)
  endif()
  execute_process(COMMAND dpkg-deb --root-owner-group -Zgzip --build ${raw} ${ddeb}
                  OUTPUT_QUIET RESULT_VARIABLE rc)
  file(REMOVE_RECURSE ${raw})
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "dbgsym.cmake: dpkg-deb --build ${ddeb} failed")
  endif()
endforeach()
