#!/usr/bin/env python3
"""Sizes of an image saved as an OCI layout tar (`oci-archive`) or a docker archive (`docker save`).

usage: image-size.py ARCHIVE.tar
prints one line: LAYERS FILE_BYTES TAR_BYTES STORED_BYTES CONFIG_BYTES
  FILE_BYTES    regular-file content in all layers (the same for the same content, whatever the tool)
  TAR_BYTES     uncompressed layer tars (differs by tar headers: PAX records, parent directories)
  STORED_BYTES  layer blobs as stored in the archive (gzip/zstd for OCI, plain tar for docker)
  CONFIG_BYTES  the image config JSON
"""
import gzip, io, json, sys, tarfile


def decompress(blob):
    if blob[:2] == b"\x1f\x8b":
        return gzip.decompress(blob)
    if blob[:4] == b"\x28\xb5\x2f\xfd":
        import subprocess
        return subprocess.run(["zstd", "-dc"], input=blob, capture_output=True, check=True).stdout
    return blob


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    with tarfile.open(sys.argv[1]) as archive:
        names = set(archive.getnames())
        read = lambda name: archive.extractfile(name.lstrip("./")).read()
        if "index.json" in names:
            index = json.loads(read("index.json"))
            manifest = json.loads(read("blobs/" + index["manifests"][0]["digest"].replace(":", "/")))
            if "manifests" in manifest:  # an index inside: take its first image
                manifest = json.loads(read("blobs/" + manifest["manifests"][0]["digest"].replace(":", "/")))
            config = read("blobs/" + manifest["config"]["digest"].replace(":", "/"))
            layers = ["blobs/" + l["digest"].replace(":", "/") for l in manifest["layers"]]
        else:
            manifest = json.loads(read("manifest.json"))[0]
            config = read(manifest["Config"])
            layers = manifest["Layers"]
        file_bytes = tar_bytes = stored = 0
        for name in layers:
            blob = read(name)
            stored += len(blob)
            raw = decompress(blob)
            tar_bytes += len(raw)
            with tarfile.open(fileobj=io.BytesIO(raw)) as layer:
                file_bytes += sum(m.size for m in layer.getmembers() if m.isreg())
    print(len(layers), file_bytes, tar_bytes, stored, len(config))


if __name__ == "__main__":
    main()
