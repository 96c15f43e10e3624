# See CMakeLists.txt beside this file.
function(run)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  message(STATUS "${out}")
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "command failed (${rc}): ${ARGN}\n${out}\n${err}")
  endif()
endfunction()

file(REMOVE_RECURSE ${WORK_DIR})
set(prefix ${WORK_DIR}/prefix)
run(${CMAKE_COMMAND} --install ${BUILD_DIR} --prefix ${prefix})

set(flags "")
if(SANITIZE STREQUAL "address")
  set(flags "-fsanitize=address,undefined")
elseif(SANITIZE STREQUAL "thread")
  set(flags "-fsanitize=thread")
endif()

run(${CMAKE_COMMAND} -S ${SOURCE_DIR}/examples -B ${WORK_DIR}/examples
    -DCMAKE_PREFIX_PATH=${prefix} -DCMAKE_CXX_COMPILER=${CXX} "-DCMAKE_CXX_FLAGS=${flags}"
    "-DCMAKE_EXE_LINKER_FLAGS=${flags}" -DCMAKE_BUILD_RPATH=${prefix}/lib)
run(${CMAKE_COMMAND} --build ${WORK_DIR}/examples)

file(MAKE_DIRECTORY ${WORK_DIR}/flock ${WORK_DIR}/fcntl)
set(urls "inproc:" "flock://${WORK_DIR}/flock" "fcntl://${WORK_DIR}/fcntl"
         "sqlite://${WORK_DIR}/contract.db" "sqlite://${WORK_DIR}/contract.db?strategy=version")
if(DEFINED ENV{ORDO_EXTRA_CONTRACT_URLS})
  list(APPEND urls $ENV{ORDO_EXTRA_CONTRACT_URLS})
endif()
foreach(url IN LISTS urls)
  run(${WORK_DIR}/examples/ordo-contract-check ${url})
endforeach()

# pkg-config: compile and run the same check from one command line.
set(ENV{PKG_CONFIG_PATH} ${prefix}/lib/pkgconfig)
execute_process(COMMAND pkg-config --cflags --libs ordo OUTPUT_VARIABLE pc RESULT_VARIABLE rc
                OUTPUT_STRIP_TRAILING_WHITESPACE)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "pkg-config --cflags --libs ordo failed")
endif()
separate_arguments(pc UNIX_COMMAND "${pc}")
separate_arguments(flag_list UNIX_COMMAND "${flags}")
run(${CXX} ${flag_list} ${SOURCE_DIR}/examples/contract_check.cc -o ${WORK_DIR}/pc-check ${pc}
    -Wl,-rpath,${prefix}/lib)
run(${WORK_DIR}/pc-check inproc:)

# The installed ordo binary finds the installed libordo, which it loads for every backend but
# the file ones, and the serve module, through its $ORIGIN-relative RUNPATH.
run(${prefix}/bin/ordo --version)
run(${prefix}/bin/ordo run --backend flock://${WORK_DIR}/flock --lock installed -- true)
run(${prefix}/bin/ordo run --backend sqlite://${WORK_DIR}/run.db --lock installed -- true)
run(${prefix}/bin/ordo migrate --backend sqlite://${WORK_DIR}/migrate.db)
# A bad token file is refused by the server itself, so this proves the module was loaded.
file(WRITE ${WORK_DIR}/bad-auth "short\n")
execute_process(COMMAND ${prefix}/bin/ordo serve --auth-file ${WORK_DIR}/bad-auth --backend inproc:
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(NOT rc EQUAL 125 OR NOT err MATCHES "bad-auth:1:")
  message(FATAL_ERROR "ordo serve did not load its server module (${rc}): ${err}")
endif()
# ordo-torture is installed beside ordo and runs from there: a short run on flock:// (one
# worker, no faults) through the installed libordo.
run(${prefix}/bin/ordo-torture --backend flock:// --workers 1 --duration 300ms --no-nemesis
    --ttl 2s --max-sleep 0ms)
if(NOT EXISTS ${prefix}/share/man/man1/ordo.1)
  message(FATAL_ERROR "the man page was not installed")
endif()
