# The eventer: loop threads, the epoll poller, timers, job queues, the POSIX fd opset, and the
# co-routine layer on top of them (eventer_aco.c).
find_package(Threads REQUIRED)
list(APPEND ARK_SOURCES
    ${CMAKE_CURRENT_LIST_DIR}/eventer_core.c
    ${CMAKE_CURRENT_LIST_DIR}/eventer_timers.c
    ${CMAKE_CURRENT_LIST_DIR}/eventer_event_pool.c
    ${CMAKE_CURRENT_LIST_DIR}/eventer_jobq.c
    ${CMAKE_CURRENT_LIST_DIR}/eventer_fd.c
    ${CMAKE_CURRENT_LIST_DIR}/eventer_aco.c
    ${CMAKE_CURRENT_LIST_DIR}/poller_epoll.c)
list(APPEND ARK_LINK_LIBRARIES Threads::Threads)
# Job cancellation unwinds the job thread with pthread_cancel: build the file that runs jobs
# with unwind-based cleanup handlers (the setjmp-based C fallback confuses the sanitizers).
set_source_files_properties(${CMAKE_CURRENT_LIST_DIR}/eventer_jobq.c
    PROPERTIES COMPILE_OPTIONS "-fexceptions")
