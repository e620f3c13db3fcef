// Marks what the shared library exports: the public API and nothing else (it is built with
// hidden visibility by default).
#pragma once

#if defined(_WIN32)
#define LONGATTN_API
#else
#define LONGATTN_API __attribute__((visibility("default")))
#endif
