# Warnings for ordo's own targets (not for the consumers of the installed package).
add_library(ordo_warnings INTERFACE)
target_compile_options(ordo_warnings INTERFACE
  -Wall -Wextra -Wpedantic -Wshadow -Wnon-virtual-dtor -Wold-style-cast -Wcast-align
  -Wno-missing-field-initializers  # designated initializers of LockRequest are the intended style
  -Woverloaded-virtual -Wnull-dereference -Wimplicit-fallthrough
  $<$<CXX_COMPILER_ID:Clang>:-Wthread-safety>)
