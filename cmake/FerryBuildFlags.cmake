# SPDX-License-Identifier: Apache-2.0
# INTERFACE target carrying warnings, _GNU_SOURCE and sanitizers (STYLE.md 3.12).
add_library(ferry_build_flags INTERFACE)
target_compile_definitions(ferry_build_flags INTERFACE _GNU_SOURCE)
option(FERRY_WERROR "Treat warnings as errors" OFF)
target_compile_options(ferry_build_flags INTERFACE
  -Wall -Wextra -Wpedantic -Wshadow -Wstrict-prototypes -Wmissing-prototypes
  -Wold-style-definition -Wpointer-arith -Wcast-qual -Wwrite-strings -Wformat=2
  -Wundef -Wvla -Wimplicit-fallthrough -Wnull-dereference -Wno-unused-parameter
  $<$<BOOL:${FERRY_WERROR}>:-Werror>)
set(FERRY_SANITIZE "" CACHE STRING "Comma list for -fsanitize=, e.g. address,undefined")
if(FERRY_SANITIZE)
  target_compile_options(ferry_build_flags INTERFACE
    -fsanitize=${FERRY_SANITIZE} -fno-omit-frame-pointer -fno-sanitize-recover=all)
  target_link_options(ferry_build_flags INTERFACE -fsanitize=${FERRY_SANITIZE})
endif()
if(CMAKE_BUILD_TYPE STREQUAL "Release")
  target_compile_options(ferry_build_flags INTERFACE -D_FORTIFY_SOURCE=2 -fstack-protector-strong)
  target_link_options(ferry_build_flags INTERFACE -Wl,-z,relro,-z,now)
endif()
