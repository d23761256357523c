/* stb_impl.c — the stb_image decoder and stb_image_write, compiled into the library: Debian's
 * stb_image.h with the fixes in stb_image-fixes.patch (the Makefile writes the patched copy to
 * $(BUILD)/gen/stb/, found first on the include path), so the fixed decoder is the one linked. */
/* A corrupt file is an error from stb, never an abort inside it (Debian's libstb is built so). */
#define STBI_ASSERT(x) ((void)0)
#define STB_IMAGE_IMPLEMENTATION
#define STB_IMAGE_WRITE_IMPLEMENTATION
#include <stb/stb_image.h>
#include <stb/stb_image_write.h>
