# The co-routine core: portable C plus one context-switch file per CPU.
if(CMAKE_SYSTEM_PROCESSOR MATCHES "^(x86_64|AMD64|amd64)$")
    set(ARK_ACO_SWITCH_SOURCE aco_switch_x86_64.S)
elseif(CMAKE_SYSTEM_PROCESSOR MATCHES "^(aarch64|arm64|ARM64)$")
    set(ARK_ACO_SWITCH_SOURCE aco_switch_aarch64.S)
else()
    message(FATAL_ERROR "ACO: no context switch for processor '${CMAKE_SYSTEM_PROCESSOR}'")
endif()
list(APPEND ARK_SOURCES ${CMAKE_CURRENT_LIST_DIR}/aco.c
     ${CMAKE_CURRENT_LIST_DIR}/${ARK_ACO_SWITCH_SOURCE})
find_package(Threads REQUIRED)
list(APPEND ARK_LINK_LIBRARIES Threads::Threads ${CMAKE_DL_LIBS})
list(APPEND ARK_PKGCONFIG_LIBS_PRIVATE -pthread -ldl)
