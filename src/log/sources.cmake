# Logging: named hierarchical streams (mtev_log.h).
find_package(Threads REQUIRED)
list(APPEND ARK_SOURCES ${CMAKE_CURRENT_LIST_DIR}/log.c)
list(APPEND ARK_LINK_LIBRARIES Threads::Threads)
