# Functions every certstore folder uses to declare its targets, so that each
# library is built, exported, installed and described for pkg-config the
# same way.

# Warnings apply to certstore's own targets only, never to dependencies.
function(certstore_warnings target)
  target_compile_features(${target} PRIVATE cxx_std_17)
  target_compile_options(${target} PRIVATE -Wall -Wextra -Wpedantic -Wshadow
    -Wnon-virtual-dtor -Wno-unused-parameter)
  if(CERTSTORE_WERROR)
    target_compile_options(${target} PRIVATE -Werror)
  endif()
  if(CERTSTORE_THREAD_SAFETY)
    target_compile_options(${target} PRIVATE -Wthread-safety -Werror)
  endif()
endfunction()

# certstore_library(<target> COMPONENT <name> SOURCES … [HEADERS …]
#                   [PC_REQUIRES …] [PC_REQUIRES_PRIVATE …] [PC_LIBS_PRIVATE …])
#
# A public library: certstore::<name> (an alias here, an imported target
# after find_package), libcertstore_<name>.so.<major> in a shared build.
# HEADERS are its public headers, relative to include/certstore/. The PC_*
# arguments become its certstore-<name>.pc: pkg-config modules and -l flags
# it needs (Requires for what its headers include, the private ones for a
# static link).
function(certstore_library target)
  cmake_parse_arguments(PARSE_ARGV 1 arg "" "COMPONENT"
    "SOURCES;HEADERS;PC_REQUIRES;PC_REQUIRES_PRIVATE;PC_LIBS_PRIVATE")
  add_library(${target} ${arg_SOURCES})
  add_library(certstore::${arg_COMPONENT} ALIAS ${target})
  set_target_properties(${target} PROPERTIES
    EXPORT_NAME ${arg_COMPONENT}
    VERSION ${PROJECT_VERSION}
    SOVERSION ${PROJECT_VERSION_MAJOR}
    CXX_VISIBILITY_PRESET hidden
    VISIBILITY_INLINES_HIDDEN ON)
  target_compile_features(${target} PUBLIC cxx_std_17)
  target_include_directories(${target}
    PUBLIC
      $<BUILD_INTERFACE:${PROJECT_SOURCE_DIR}/include>
      $<BUILD_INTERFACE:${PROJECT_BINARY_DIR}/include>
      $<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}>
    PRIVATE
      ${PROJECT_SOURCE_DIR})
  certstore_warnings(${target})

  list(TRANSFORM arg_HEADERS PREPEND ${PROJECT_SOURCE_DIR}/include/certstore/)
  set_property(GLOBAL APPEND PROPERTY CERTSTORE_COMPONENTS ${arg_COMPONENT})
  set_property(GLOBAL APPEND PROPERTY CERTSTORE_UMBRELLA_HEADERS ${arg_HEADERS})
  if(CERTSTORE_INSTALL)
    install(TARGETS ${target} EXPORT certstoreTargets
      ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
      LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
      RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR}
      INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
    install(FILES ${arg_HEADERS}
      DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/certstore)
    certstore_pkg_config(${arg_COMPONENT} "${arg_PC_REQUIRES}"
      "${arg_PC_REQUIRES_PRIVATE}" "${arg_PC_LIBS_PRIVATE}"
      "-l$<TARGET_FILE_BASE_NAME:${target}>")
  endif()
endfunction()

# certstore-<component>.pc. A static library has no place to record what
# it links, so in a static build the private parts become public ones.
function(certstore_pkg_config component requires requires_private
         libs_private libs)
  list(JOIN requires " " requires)
  list(JOIN requires_private " " requires_private)
  list(JOIN libs_private " " libs_private)
  if(NOT BUILD_SHARED_LIBS)
    string(STRIP "${requires} ${requires_private}" requires)
    string(STRIP "${libs} ${libs_private}" libs)
    set(requires_private "")
    set(libs_private "")
  endif()
  set(name "certstore-${component}")
  if(component STREQUAL "certstore")
    set(name "certstore")
  endif()
  # Relocatable: the prefix is found from the .pc file's own place, so the
  # same files work after `cmake --install --prefix …` and from the .deb.
  file(RELATIVE_PATH to_prefix
    /prefix/${CMAKE_INSTALL_LIBDIR}/pkgconfig /prefix)
  file(GENERATE OUTPUT ${PROJECT_BINARY_DIR}/pkgconfig/${name}.pc CONTENT
"prefix=\${pcfiledir}/${to_prefix}
libdir=\${prefix}/${CMAKE_INSTALL_LIBDIR}
includedir=\${prefix}/${CMAKE_INSTALL_INCLUDEDIR}

Name: ${name}
Description: certstore: ${component}
Version: ${PROJECT_VERSION}
Requires: ${requires}
Requires.private: ${requires_private}
Libs: -L\${libdir} ${libs}
Libs.private: ${libs_private}
Cflags: -I\${includedir}
")
  install(FILES ${PROJECT_BINARY_DIR}/pkgconfig/${name}.pc
    DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
endfunction()

# include/certstore/certstore.h in the build tree: every public header of
# the components built, so that `#include "certstore/certstore.h"` gives a
# user the whole API of this installation.
function(certstore_write_umbrella_header)
  get_property(headers GLOBAL PROPERTY CERTSTORE_UMBRELLA_HEADERS)
  set(includes "")
  foreach(header IN LISTS headers)
    get_filename_component(name ${header} NAME)
    string(APPEND includes "#include \"certstore/${name}\"\n")
  endforeach()
  configure_file(${PROJECT_SOURCE_DIR}/include/certstore/certstore.h.in
    ${PROJECT_BINARY_DIR}/include/certstore/certstore.h @ONLY)
  if(CERTSTORE_INSTALL)
    install(FILES ${PROJECT_BINARY_DIR}/include/certstore/certstore.h
      ${PROJECT_BINARY_DIR}/include/certstore/version.h
      DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/certstore)
  endif()
endfunction()

# Debian's Abseil is some 30 shared libraries: loading them was 5 ms of
# every certstore process's start (a `certstore token` run takes ~45 ms).
# Points the imported absl:: targets at the static archives installed
# beside them, so that programs and tests carry the Abseil code they use.
# Only for static builds: a shared libcertstore must not hold a second copy
# of Abseil next to its user's.
function(certstore_prefer_static_absl)
  get_property(imported DIRECTORY ${PROJECT_SOURCE_DIR} PROPERTY IMPORTED_TARGETS)
  set(swapped 0)
  foreach(target IN LISTS imported)
    if(NOT target MATCHES "^absl::")
      continue()
    endif()
    get_target_property(type ${target} TYPE)
    get_target_property(configs ${target} IMPORTED_CONFIGURATIONS)
    if(NOT type STREQUAL "SHARED_LIBRARY" OR NOT configs)
      continue()
    endif()
    foreach(config IN LISTS configs)
      get_target_property(location ${target} IMPORTED_LOCATION_${config})
      string(REGEX REPLACE "\\.so(\\.[0-9.]+)?$" ".a" archive "${location}")
      if(archive STREQUAL location OR NOT EXISTS "${archive}")
        continue()
      endif()
      set_target_properties(${target} PROPERTIES
        IMPORTED_LOCATION_${config} "${archive}"
        IMPORTED_NO_SONAME_${config} TRUE)
      math(EXPR swapped "${swapped} + 1")
    endforeach()
  endforeach()
  message(STATUS "certstore: ${swapped} Abseil libraries linked from static archives")
endfunction()
