# REST routing core: rules of (method, base, PCRE2 expression) -> handler. The mountpoint API
# and the mountpoint API (mtev_http_rest_new_rule and friends, the ACL) in rest.c.
find_package(Threads REQUIRED)
find_package(PkgConfig REQUIRED)
pkg_check_modules(ARK_PCRE2 REQUIRED IMPORTED_TARGET libpcre2-8)
list(APPEND ARK_SOURCES ${CMAKE_CURRENT_LIST_DIR}/rest_router.c ${CMAKE_CURRENT_LIST_DIR}/rest.c)
list(APPEND ARK_LINK_LIBRARIES PkgConfig::ARK_PCRE2 Threads::Threads)
list(APPEND ARK_PKGCONFIG_REQUIRES libpcre2-8)
