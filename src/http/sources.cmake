# The HTTP/1.x core: the incremental request parser, the chunked decoder, field helpers and
# the response serializer. Sessions and the listener type build on these later.
list(APPEND ARK_SOURCES
    ${CMAKE_CURRENT_LIST_DIR}/http_parser.c
    ${CMAKE_CURRENT_LIST_DIR}/http_chunked.c
    ${CMAKE_CURRENT_LIST_DIR}/http_fields.c
    ${CMAKE_CURRENT_LIST_DIR}/http_response_writer.c)
