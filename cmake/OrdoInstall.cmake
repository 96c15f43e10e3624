# Install rules: headers, libordo, ordoConfig.cmake (+ version file, target ordo::ordo), ordo.pc.
include(CMakePackageConfigHelpers)

install(DIRECTORY ${PROJECT_SOURCE_DIR}/middleware/include/ordo
        DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(FILES ${PROJECT_BINARY_DIR}/middleware/include/ordo/version.h
        DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/ordo)
# ordo/pg_fence.h: header-only, for libpqxx users (not part of ordo/ordo.h; needs <pqxx/pqxx>).
install(FILES ${PROJECT_SOURCE_DIR}/adapters/postgresql/include/ordo/pg_fence.h
        DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/ordo)
install(TARGETS ordo ordo_middleware_headers EXPORT ordoTargets
        LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
        ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
        RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR}
        INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(EXPORT ordoTargets NAMESPACE ordo:: FILE ordoTargets.cmake
        DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/ordo)
configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/ordoConfig.cmake.in
  ${PROJECT_BINARY_DIR}/ordoConfig.cmake
  INSTALL_DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/ordo)
write_basic_package_version_file(${PROJECT_BINARY_DIR}/ordoConfigVersion.cmake
  COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/ordoConfig.cmake ${PROJECT_BINARY_DIR}/ordoConfigVersion.cmake
        DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/ordo)

# ordo.pc finds its prefix relative to itself, so it works from any --prefix.
file(RELATIVE_PATH ORDO_PC_PREFIX "/p/${CMAKE_INSTALL_LIBDIR}/pkgconfig" "/p")
string(REGEX REPLACE "/$" "" ORDO_PC_PREFIX "${ORDO_PC_PREFIX}")
configure_file(${PROJECT_SOURCE_DIR}/cmake/ordo.pc.in ${PROJECT_BINARY_DIR}/ordo.pc @ONLY)
install(FILES ${PROJECT_BINARY_DIR}/ordo.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
