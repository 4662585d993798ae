# Build helpers shared by every folder of the project.

# Warnings for everything we write; -Werror only where ARK_WERROR is on (dev and CI presets).
macro(ark_setup_compiler_flags)
    add_compile_options(-Wall -Wextra -Wshadow -Wpointer-arith -Wformat=2
        $<$<COMPILE_LANGUAGE:C>:-Wstrict-prototypes> $<$<COMPILE_LANGUAGE:C>:-Wmissing-prototypes>
        -Wno-unused-parameter)
    add_compile_definitions(_GNU_SOURCE)
    if(ARK_WERROR)
        add_compile_options(-Werror)
    endif()
    if(ARK_SANITIZE)
        add_compile_options(-fsanitize=${ARK_SANITIZE} -fno-omit-frame-pointer
                            -fno-sanitize-recover=all -g)
        add_link_options(-fsanitize=${ARK_SANITIZE})
        if(ARK_SANITIZE MATCHES "address")
            add_compile_definitions(ARK_ASAN=1)
        endif()
        if(ARK_SANITIZE MATCHES "thread")
            add_compile_definitions(ARK_TSAN=1)
        endif()
    endif()
endmacro()

# ark_add_test(NAME test_x SOURCES a.c b.c [LABELS l...] [TIMEOUT s] [LIBRARIES libs...])
# One binary per component, linked with the test harness and the static library; ctest runs
# the whole binary, and `test_x CASE` runs a single case in-process.
function(ark_add_test)
    cmake_parse_arguments(T "" "NAME;TIMEOUT" "SOURCES;LABELS;LIBRARIES" ${ARGN})
    if(NOT T_TIMEOUT)
        set(T_TIMEOUT 300)
    endif()
    add_executable(${T_NAME} ${T_SOURCES})
    target_link_libraries(${T_NAME} PRIVATE ark_test_harness arkenstone_static ${T_LIBRARIES})
    add_test(NAME ${T_NAME} COMMAND ${T_NAME})
    set_tests_properties(${T_NAME} PROPERTIES TIMEOUT ${T_TIMEOUT} LABELS "${T_LABELS}")
endfunction()
