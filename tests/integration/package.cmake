# The packages (docs/packaging.md), label `package`. cpack packages the
# release build's own binaries (no second build): package.build makes the
# .deb, the .rpm and an "older" .deb, which the other tests use.
# Not in the sanitizer build: a package of ASan binaries is no product.
if(DIODE_SANITIZE)
  return()
endif()

set(diode_pkg_dir ${PROJECT_BINARY_DIR}/package-test)

add_test(NAME package.build
  COMMAND ${DIODE_BASH} ${CMAKE_CURRENT_SOURCE_DIR}/package_build.sh ${PROJECT_BINARY_DIR} ${diode_pkg_dir})
set_tests_properties(package.build PROPERTIES
  LABELS package TIMEOUT 300 FIXTURES_SETUP diode_packages RESOURCE_LOCK diode_package_dir)

add_test(NAME package.lintian
  COMMAND ${DIODE_BASH} -c "exec ${DIODE_BASH} '${CMAKE_CURRENT_SOURCE_DIR}/package_lint.sh' deb '${diode_pkg_dir}'/diode_*_amd64.deb")
add_test(NAME package.rpm
  COMMAND ${DIODE_BASH} -c "exec ${DIODE_BASH} '${CMAKE_CURRENT_SOURCE_DIR}/package_lint.sh' rpm '${diode_pkg_dir}'/diode-*.x86_64.rpm")
add_test(NAME package.dbgsym
  COMMAND ${DIODE_BASH} -c "exec ${DIODE_BASH} '${CMAKE_CURRENT_SOURCE_DIR}/package_lint.sh' dbgsym '${diode_pkg_dir}'/diode_*_amd64.deb '${diode_pkg_dir}'/diode-dbgsym_*_amd64.ddeb")
set_tests_properties(package.lintian package.rpm package.dbgsym PROPERTIES
  LABELS package TIMEOUT 300 FIXTURES_REQUIRED diode_packages)

# dpkg -i on this machine, the network test bed: root, one at a time.
add_test(NAME package.install
  COMMAND ${DIODE_BASH} -c "exec ${DIODE_BASH} '${CMAKE_CURRENT_SOURCE_DIR}/package_install.sh' '${diode_pkg_dir}'/old/diode_*_amd64.deb '${diode_pkg_dir}'/diode_*_amd64.deb")
set_tests_properties(package.install PROPERTIES
  LABELS "package;netbed" RUN_SERIAL TRUE TIMEOUT 240 FIXTURES_REQUIRED diode_packages
  ENVIRONMENT "DIODE_SOURCE_DIR=${PROJECT_SOURCE_DIR};DIODE_BINARY_DIR=${PROJECT_BINARY_DIR}")

# rpm -i, -U and -e with their scriptlets, in a root of its own (a private
# mount namespace; nothing of the machine is changed).
add_test(NAME package.rpm_install
  COMMAND ${DIODE_BASH} -c "exec ${DIODE_BASH} '${CMAKE_CURRENT_SOURCE_DIR}/package_rpm_install.sh' '${diode_pkg_dir}'/old/diode-*.x86_64.rpm '${diode_pkg_dir}'/diode-*.x86_64.rpm")
set_tests_properties(package.rpm_install PROPERTIES
  LABELS package TIMEOUT 180 FIXTURES_REQUIRED diode_packages)

add_test(NAME package.unit
  COMMAND ${DIODE_BASH} ${CMAKE_CURRENT_SOURCE_DIR}/package_unit.sh ${PROJECT_BINARY_DIR})
add_test(NAME package.man
  COMMAND ${DIODE_BASH} ${CMAKE_CURRENT_SOURCE_DIR}/package_man.sh ${PROJECT_BINARY_DIR}/man)
set_tests_properties(package.unit package.man PROPERTIES LABELS package TIMEOUT 120)
