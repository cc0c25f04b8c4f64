// Placeholder translation unit so the flow library exists before its first unit lands.
#include "l45/flow/flow.hpp"
