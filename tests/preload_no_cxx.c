/* A C program under the preload. The preload defines C++'s operator new
 * and delete but reaches libstdc++ only through weak references: libstdc++
 * must not be in this process. Then a C++ library is loaded with
 * dlopen(RTLD_LOCAL), so that its libstdc++ stays out of the global scope
 * and the preload's weak references stay NULL: its operator new must still
 * be the preload's, throw std::bad_alloc and call its new-handler (the
 * preload finds libstdc++ when it needs it).
 *
 * Usage: preload_no_cxx [MODULE]   (MODULE: preload_cxx_module.so; without
 * it, only the first half). Run with LD_PRELOAD (tests/meson.build). */
#include <dlfcn.h>
#include <link.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"

static int has_name(struct dl_phdr_info *info, size_t size, void *name)
{
    (void)size;
    return info->dlpi_name != NULL && strstr(info->dlpi_name, name) != NULL;
}

static bool loaded(const char *name)
{
    return dl_iterate_phdr(has_name, (void *)name) != 0;
}

int main(int argc, char **argv)
{
    CHECKF(loaded("libmapalloc-preload"), "run it with LD_PRELOAD=libmapalloc-preload.so");
    char *p = malloc(1000);
    CHECK(p != NULL);
    free(p);
    CHECKF(!loaded("libstdc++"), "libstdc++ is loaded in a C program under the preload");
    printf("no_cxx: libstdc++ is not loaded\n");
    if (argc < 2)
        return 0;

    void *module = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
    CHECKF(module != NULL, "%s", dlerror());
    CHECK(loaded("libstdc++"));
    CHECKF(dlsym(RTLD_DEFAULT, "_ZSt15get_new_handlerv") == NULL,
           "libstdc++ is in the global scope: the case this test is for does not arise");
    int (*run)(void) = (int (*)(void))dlsym(module, "preload_cxx_module_run");
    CHECK(run != NULL);
    int failed = run();
    CHECKF(failed == 0, "%d check(s) failed in the C++ module", failed);
    printf("no_cxx: the C++ module loaded later gets the preload's operators, std::bad_alloc and its new-handler\n");
    return 0;
}
