// A short-lived loader for the exec-window benchmark: dlopens the plugin named by its argument
// (RTLD_NOW), prints "plugin_length(100)=N" from its first call, and exits.
#include <dlfcn.h>
#include <stdio.h>
int main(int argc, char **argv) {
    void *plugin = argc > 1 ? dlopen(argv[1], RTLD_NOW) : NULL;
    int (*length)(int) = plugin ? (int (*)(int))dlsym(plugin, "plugin_length") : NULL;
    if (!length) {
        printf("dlopen failed: %s\n", dlerror());
        return 1;
    }
    printf("plugin_length(100)=%d\n", length(100));
    return 0;
}
