// swajit CPU kernel basics: fixed-width types and the qualifiers templates/window_mask.h needs. The generated
// CPU source includes no system header, so Clang compiles it in process with nothing but its own builtins.
typedef unsigned short u16;
typedef unsigned int u32;
typedef long long i64;

#define SWAJIT_WINDOW_FN static inline
#define SWAJIT_WINDOW_METHOD inline
static inline int min(int a, int b) { return a < b ? a : b; }
static inline int max(int a, int b) { return a > b ? a : b; }
