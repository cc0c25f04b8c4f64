include(GoogleTest)

# l45_layer(NAME DEPS...) builds src/<NAME>/*.cpp (except *_test, *_bench, *_fuzz) into the
# static library l45_<NAME>, and src/<NAME>/*_test.cpp into one GoogleTest binary per layer,
# each of its tests registered with ctest as <NAME>.<Suite>.<Test> (label: <NAME>).
# A new unit is a new file: no list to edit.
function(l45_layer name)
  file(GLOB srcs CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/*.cpp ${CMAKE_CURRENT_SOURCE_DIR}/*/*.cpp)
  set(lib_srcs)
  set(test_srcs)
  foreach(f IN LISTS srcs)
    if(f MATCHES "_test\\.cpp$")
      list(APPEND test_srcs ${f})
    elseif(NOT f MATCHES "_(bench|fuzz)\\.cpp$")
      list(APPEND lib_srcs ${f})
    endif()
  endforeach()
  add_library(l45_${name} STATIC ${lib_srcs})
  target_include_directories(l45_${name} PUBLIC ${PROJECT_SOURCE_DIR}/include PRIVATE ${CMAKE_CURRENT_SOURCE_DIR})
  target_link_libraries(l45_${name} PUBLIC ${ARGN})
  if(test_srcs)
    add_executable(l45_${name}_test ${test_srcs})
    # WHOLE_ARCHIVE keeps the one-line registrations (L45_REGISTER_*) of the layer's units.
    target_link_libraries(l45_${name}_test PRIVATE "$<LINK_LIBRARY:WHOLE_ARCHIVE,l45_${name}>"
      l45_testing GTest::gtest_main GTest::gmock)
    target_include_directories(l45_${name}_test PRIVATE ${CMAKE_CURRENT_SOURCE_DIR})
    # One ctest test per GoogleTest test: ctest reports, times and parallelises each one.
    gtest_discover_tests(l45_${name}_test
      TEST_PREFIX "${name}."
      PROPERTIES LABELS ${name}
      DISCOVERY_TIMEOUT 60)
  endif()
endfunction()
