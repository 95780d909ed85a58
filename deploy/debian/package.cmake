# The Debian package: `cpack -G DEB` in a build directory (README "Debian package and systemd")
# -> herald_<version>_<arch>.deb with /usr/bin/herald, the systemd unit, a commented
# /etc/herald/herald.conf (generated from `herald --help-markdown`, so it lists every flag) and
# the README/CHANGELOG. Included from CMakeLists.txt after the herald target.
set(HERALD_DEB_DIR ${CMAKE_SOURCE_DIR}/deploy/debian)
set(HERALD_CONF_OUT ${CMAKE_BINARY_DIR}/herald.conf)
find_program(PYTHON3_FOR_CONF python3 REQUIRED)
add_custom_command(
  OUTPUT ${HERALD_CONF_OUT}
  COMMAND ${PYTHON3_FOR_CONF} ${HERALD_DEB_DIR}/mkconf.py $<TARGET_FILE:herald> ${HERALD_CONF_OUT}
  DEPENDS herald ${HERALD_DEB_DIR}/mkconf.py
  COMMENT "herald.conf from herald --help-markdown")
add_custom_target(herald_conf ALL DEPENDS ${HERALD_CONF_OUT})

# Installed with the binary (cmake --install too): paths of a Debian system.
install(FILES ${HERALD_DEB_DIR}/herald.service DESTINATION lib/systemd/system)
install(FILES ${HERALD_CONF_OUT} DESTINATION /etc/herald
        PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ)
install(FILES ${CMAKE_SOURCE_DIR}/README.md ${CMAKE_SOURCE_DIR}/PROTOCOL.md
              ${CMAKE_SOURCE_DIR}/CHANGELOG.md ${CMAKE_SOURCE_DIR}/LICENSE
        DESTINATION share/doc/herald)

set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME herald)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_CONTACT "Herald maintainers <herald@localhost>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "push server: SSE, WebSocket and long-poll from Redis")
set(CPACK_PACKAGE_DESCRIPTION
    "Herald edge: stateless push server fanning out Redis pub/sub and streams to Server-Sent\n Events, WebSocket and long-poll clients, with resumable per-topic history.")
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT) # herald_<version>_<arch>.deb
set(CPACK_DEBIAN_PACKAGE_SECTION net)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
# Shared-library dependencies from the binary (dpkg-shlibdeps), plus what the scripts use;
# libev is loaded at run time (edge/service.c), so dpkg-shlibdeps cannot see it.
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_DEPENDS "adduser, libev4, libwebsockets-evlib-ev")
set(CPACK_DEBIAN_PACKAGE_SUGGESTS "redis-server, haproxy")
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA
    ${HERALD_DEB_DIR}/conffiles ${HERALD_DEB_DIR}/postinst ${HERALD_DEB_DIR}/prerm
    ${HERALD_DEB_DIR}/postrm)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
set(CPACK_WARN_ON_ABSOLUTE_INSTALL_DESTINATION OFF)
include(CPack)
