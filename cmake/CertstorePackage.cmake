# What `cmake --install` and `cpack` produce beside the libraries: the CMake
# package (certstoreConfig.cmake, its version file, the exported targets)
# and a Debian package of the whole installation.
include(CMakePackageConfigHelpers)

set(CERTSTORE_CONFIG_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/certstore)
get_property(CERTSTORE_COMPONENTS GLOBAL PROPERTY CERTSTORE_COMPONENTS)
if(BUILD_SHARED_LIBS)
  set(CERTSTORE_STATIC OFF)
else()
  set(CERTSTORE_STATIC ON)
endif()

install(EXPORT certstoreTargets NAMESPACE certstore::
  DESTINATION ${CERTSTORE_CONFIG_DIR})
# The same targets straight from this build tree (certstore_DIR=<build>).
export(EXPORT certstoreTargets NAMESPACE certstore::
  FILE ${PROJECT_BINARY_DIR}/certstoreTargets.cmake)
if(TARGET certstore_testing)
  install(EXPORT certstoreTestingTargets NAMESPACE certstore::
    DESTINATION ${CERTSTORE_CONFIG_DIR})
endif()

configure_package_config_file(cmake/certstoreConfig.cmake.in
  ${PROJECT_BINARY_DIR}/certstoreConfig.cmake
  INSTALL_DESTINATION ${CERTSTORE_CONFIG_DIR})
write_basic_package_version_file(
  ${PROJECT_BINARY_DIR}/certstoreConfigVersion.cmake
  COMPATIBILITY SameMajorVersion)
install(FILES
  ${PROJECT_BINARY_DIR}/certstoreConfig.cmake
  ${PROJECT_BINARY_DIR}/certstoreConfigVersion.cmake
  DESTINATION ${CERTSTORE_CONFIG_DIR})

# cpack -G DEB: one package with libraries, headers, the CMake and
# pkg-config files, the certstore command and the emulator.
set(CPACK_PACKAGE_NAME certstore)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "${PROJECT_DESCRIPTION}")
set(CPACK_PACKAGE_CONTACT "certstore maintainers <certstore@localhost>")
set(CPACK_GENERATOR DEB)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION libdevel)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
# What the headers include, and in a static build what the libraries link.
set(deb_depends libssl-dev libabsl-dev)
if(CERTSTORE_STATIC)
  if(CERTSTORE_WITH_SQLITE)
    list(APPEND deb_depends libsqlite3-dev)
  endif()
  if(CERTSTORE_WITH_PKCS11)
    list(APPEND deb_depends libp11-dev)
  endif()
  if(CERTSTORE_WITH_CLIENT)
    list(APPEND deb_depends libcurl4-openssl-dev)
  endif()
endif()
list(JOIN deb_depends ", " CPACK_DEBIAN_PACKAGE_DEPENDS)
include(CPack)
