# Read by cpack (CPACK_PROJECT_CONFIG_FILE) once per generator.
# DIODE_PACKAGE_VERSION=X in the environment packages the same build as
# version X: the install test builds an "older" package to upgrade from.
if(DEFINED ENV{DIODE_PACKAGE_VERSION} AND NOT "$ENV{DIODE_PACKAGE_VERSION}" STREQUAL "")
  set(CPACK_PACKAGE_VERSION "$ENV{DIODE_PACKAGE_VERSION}")
  set(CPACK_DEBIAN_PACKAGE_VERSION "$ENV{DIODE_PACKAGE_VERSION}")
  set(CPACK_RPM_PACKAGE_VERSION "$ENV{DIODE_PACKAGE_VERSION}")
endif()
