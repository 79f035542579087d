# The Debian package: `cpack -G DEB` in a build configured with -DCMAKE_INSTALL_PREFIX=/usr
# gives authbypass_<version>_amd64.deb (packaging/build-deb does exactly that, Release, with
# Debian's hardening flags). Included from the top-level CMakeLists.txt after the targets.
#
# Layout (docs/install.md): the CLI in /usr/bin, the helper in Squid's helper directory and
# the module in c-icap's module directory (helpers/ and icap/ install those two), the
# configuration in /etc as conffiles, man pages and docs under /usr/share. /var/log/authbypass
# and /var/lib/authbypass are not in the package: postinst makes them, with owners that
# depend on users which may not exist yet (packaging/deb/postinst).
include(GNUInstallDirs)

set(AUTHBYPASS_PACKAGE_MAINTAINER "authbypass maintainers <secops@example.com>" CACHE STRING
    "The Maintainer field of the Debian package")
set(_pkg ${CMAKE_CURRENT_LIST_DIR})
set(_pkg_out ${CMAKE_CURRENT_BINARY_DIR}/packaging)

# ---- files in /etc: every one is a conffile (dpkg keeps the admin's edits on upgrade) -----
# Absolute on purpose: Squid, c-icap and logrotate read these paths whatever our prefix,
# and the shipped configuration names them.
set(_conffiles
  "/etc/authbypass/policy.yaml|${PROJECT_SOURCE_DIR}/config/policy.yaml"
  "/etc/squid/conf.d/authbypass.conf|${PROJECT_SOURCE_DIR}/config/squid/authbypass.conf"
  "/etc/c-icap/authbypass.conf|${PROJECT_SOURCE_DIR}/config/c-icap/authbypass.conf"
  "/etc/logrotate.d/authbypass|${PROJECT_SOURCE_DIR}/config/logrotate/authbypass")
set(_conffiles_list "")
foreach(entry IN LISTS _conffiles)
  string(REPLACE "|" ";" entry "${entry}")
  list(GET entry 0 dest)
  list(GET entry 1 src)
  get_filename_component(dir "${dest}" DIRECTORY)
  get_filename_component(name "${dest}" NAME)
  install(FILES "${src}" DESTINATION "${dir}" RENAME "${name}"
          PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ)
  string(APPEND _conffiles_list "${dest}\n")
endforeach()
file(WRITE ${_pkg_out}/conffiles "${_conffiles_list}")

# ---- man pages and docs, compressed as Debian wants them (gzip -9n: reproducible) ---------
set(_man_pages
  ${PROJECT_SOURCE_DIR}/docs/man/authbypass.1
  ${PROJECT_SOURCE_DIR}/docs/man/authbypass-policy.5
  ${PROJECT_SOURCE_DIR}/docs/man/ext_authbypass_acl.8
  ${PROJECT_SOURCE_DIR}/docs/man/srv_authbypass.8)
configure_file(${_pkg}/changelog.in ${_pkg_out}/changelog @ONLY)
set(_gz_outputs "")
# The guides an admin needs on the machine (/usr/share/doc/authbypass/*.md.gz).
set(_docs
  ${PROJECT_SOURCE_DIR}/docs/install.md
  ${PROJECT_SOURCE_DIR}/docs/icap-service.md
  ${PROJECT_SOURCE_DIR}/docs/audit-and-siem.md
  ${PROJECT_SOURCE_DIR}/docs/policy-reference.md)
foreach(src IN LISTS _man_pages _docs ITEMS ${_pkg_out}/changelog)
  get_filename_component(name "${src}" NAME)
  set(gz ${_pkg_out}/gz/${name}.gz)
  add_custom_command(OUTPUT ${gz}
    COMMAND ${CMAKE_COMMAND} -E make_directory ${_pkg_out}/gz
    COMMAND sh -c "gzip -9n -c \"$1\" > \"$2\"" gzip "${src}" "${gz}"
    DEPENDS ${src} VERBATIM)
  list(APPEND _gz_outputs ${gz})
  if(src IN_LIST _man_pages)
    string(REGEX MATCH "[0-9]$" section "${name}")
    install(FILES ${gz} DESTINATION ${CMAKE_INSTALL_MANDIR}/man${section})
  else()
    install(FILES ${gz} DESTINATION ${CMAKE_INSTALL_DOCDIR})
  endif()
endforeach()
add_custom_target(authbypass_package_docs ALL DEPENDS ${_gz_outputs})
install(FILES ${_pkg}/copyright DESTINATION ${CMAKE_INSTALL_DOCDIR})

# ---- CPack: one binary package, Depends from dpkg-shlibdeps -------------------------------
set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME authbypass)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_STRIP_FILES ON)
set(CPACK_PACKAGE_CONTACT "${AUTHBYPASS_PACKAGE_MAINTAINER}")
set(CPACK_DEBIAN_PACKAGE_MAINTAINER "${AUTHBYPASS_PACKAGE_MAINTAINER}")
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)  # authbypass_<version>_<arch>.deb
set(CPACK_DEBIAN_PACKAGE_SECTION web)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
# libyaml, Boost.Regex, libidn2, OpenSSL, zlib, libicapapi (the module) and the C++
# runtime, as dpkg-shlibdeps finds them in the binaries.
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
# Recommends, not Depends: the helper is only useful on a Squid node and the module on a
# c-icap node, and a fleet may run them on different machines (docs/install.md); the CLI
# alone is a policy gate in CI. apt installs both by default.
set(CPACK_DEBIAN_PACKAGE_RECOMMENDS "squid, c-icap")
set(CPACK_DEBIAN_PACKAGE_ENHANCES "squid, c-icap")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY
    "audited proxy-authentication bypass for Windows revocation traffic")
# Paragraphs; CPack indents them and turns the blank lines into " .".
set(CPACK_DEBIAN_PACKAGE_DESCRIPTION [=[Windows fetches CRLs, OCSP answers and CA certificates as SYSTEM, and the
Microsoft Online Sign-In Assistant runs as a service: neither can answer a
proxy's 407, so behind an authenticating Squid revocation checks and sign-in
fail. authbypass makes the usual exemption a reviewed, tested YAML policy
with narrow defaults and an audit trail of every bypass.

This package contains ext_authbypass_acl, a Squid external ACL helper that
applies the policy before proxy_auth; srv_authbypass.so, a c-icap service that
checks that what passes unauthenticated really is revocation data; and the
authbypass command (check, test, explain, report, squid-config).

Installing it changes no running proxy: the Squid drop-in is commented out
and the c-icap include must be added by hand.]=])
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA
  ${_pkg}/deb/postinst ${_pkg}/deb/prerm ${_pkg}/deb/postrm ${_pkg}/deb/triggers
  ${_pkg_out}/conffiles)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)

include(CPack)
