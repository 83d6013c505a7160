# Read by cpack (CPACK_PROJECT_CONFIG_FILE) once per generator.
# DIODE_PACKAGE_VERSION=X in the environment packages the same build as
# version X: the install test builds an "older" package to upgrade from.
if(DEFINED ENV{DIODE_PACKAGE_VERSION} AND NOT "$ENV{DIODE_PACKAGE_VERSION}" STREQUAL "")
  set(CPACK_PACKAGE_VERSION "$ENV{DIODE_PACKAGE_VERSION}")
  set(CPACK_DEBIAN_PACKAGE_VERSION "$ENV{DIODE_PACKAGE_VERSION}")
  set(CPACK_RPM_PACKAGE_VERSION "$ENV{DIODE_PACKAGE_VERSION}")
endif()

# Debug symbols. The .deb: CPack's DEB generator splits them itself into
# diode-dbgsym_VERSION_amd64.ddeb (objcopy --only-keep-debug to
# /usr/lib/debug/.build-id/XX/REST.debug, then --strip-unneeded and a
# .gnu_debuglink), which needs the files unstripped when it gets them. The
# .rpm: CPack strips the binaries; no -debuginfo package (docs/packaging.md).
# DIODE_PACKAGE_DBGSYM=0 in the environment: none (the tests' older package).
if(CPACK_GENERATOR STREQUAL "DEB" AND NOT "$ENV{DIODE_PACKAGE_DBGSYM}" STREQUAL "0")
  set(CPACK_STRIP_FILES OFF)
  set(CPACK_DEBIAN_DEBUGINFO_PACKAGE ON)
else()
  set(CPACK_STRIP_FILES ON)
endif()
