# The adaptation host: messages, modules and services, polling on the eventer, chains.
list(APPEND ARK_SOURCES
    ${CMAKE_CURRENT_LIST_DIR}/adapt_message.c
    ${CMAKE_CURRENT_LIST_DIR}/adapt_host.c
    ${CMAKE_CURRENT_LIST_DIR}/adapt_xaction.c
    ${CMAKE_CURRENT_LIST_DIR}/adapt_aco.c)
list(APPEND ARK_LINK_LIBRARIES ${CMAKE_DL_LIBS})
