# The addon links the uniqdb shared library of a meson build directory:
# UNIQDB_BUILD (default: ../../build, the README's build) names it; the
# library is <build>/engine/libuniqdb.so and its directory is the addon's
# rpath.  See README.md, "Building".
{
  "variables": {
    "uniqdb_build%": "<!(node -p \"require('path').resolve(process.env.UNIQDB_BUILD || '../../build')\")",
  },
  "targets": [
    {
      "target_name": "uniqdb",
      "sources": ["src/addon.c", "src/convert.c"],
      "include_dirs": ["<!(node -p \"require('path').resolve(process.env.UNIQDB_INCLUDE || '../../include')\")"],
      "defines": ["_GNU_SOURCE"],
      "cflags": ["-std=gnu11", "-Wall", "-Wextra", "-Wno-unused-parameter",
                 "-Wno-missing-field-initializers", "-Werror"],
      "libraries": ["-L<(uniqdb_build)/engine", "-luniqdb",
                    "-Wl,-rpath,<(uniqdb_build)/engine"],
    },
  ],
}
