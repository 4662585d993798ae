# Configuration: libmtev-style XML documents read through libxml2 (mtev_conf.h).
find_package(LibXml2 REQUIRED)
list(APPEND ARK_SOURCES ${CMAKE_CURRENT_LIST_DIR}/conf.c)
list(APPEND ARK_LINK_LIBRARIES LibXml2::LibXml2)
list(APPEND ARK_PKGCONFIG_REQUIRES libxml-2.0)
