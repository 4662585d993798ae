# The HTTP/1.x core: the incremental request parser, the chunked decoder, field helpers, the
# response serializer and the gzip encoder. Sessions and the listener type build on these.
find_package(ZLIB REQUIRED)
list(APPEND ARK_SOURCES
    ${CMAKE_CURRENT_LIST_DIR}/http_parser.c
    ${CMAKE_CURRENT_LIST_DIR}/http_chunked.c
    ${CMAKE_CURRENT_LIST_DIR}/http_fields.c
    ${CMAKE_CURRENT_LIST_DIR}/http_response_writer.c
    ${CMAKE_CURRENT_LIST_DIR}/http_gzip.c
    ${CMAKE_CURRENT_LIST_DIR}/http_session.c)
list(APPEND ARK_LINK_LIBRARIES ZLIB::ZLIB)
list(APPEND ARK_PKGCONFIG_REQUIRES zlib)
