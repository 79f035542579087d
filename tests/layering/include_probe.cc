// Compiled with the include directories of authbypass::core's own sources
// (tests/layering/CMakeLists.txt): including LAYERING_PROBE_HEADER must succeed for a core
// header and fail for a header of any library above the core.
#include LAYERING_PROBE_HEADER
