# Listeners from the configuration, the accept path, acceptor closures, and TLS (OpenSSL).
find_package(OpenSSL REQUIRED)
list(APPEND ARK_SOURCES
    ${CMAKE_CURRENT_LIST_DIR}/listener.c
    ${CMAKE_CURRENT_LIST_DIR}/listener_tls.c)
list(APPEND ARK_LINK_LIBRARIES OpenSSL::SSL OpenSSL::Crypto)
list(APPEND ARK_PKGCONFIG_REQUIRES openssl)
