# Shared pieces every component uses: the version query.
list(APPEND ARK_SOURCES ${CMAKE_CURRENT_LIST_DIR}/version.c)
