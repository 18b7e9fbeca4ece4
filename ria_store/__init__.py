"""Pure library for DataLad's RIA store layout: keys, paths, URLs, stores, 7z archives."""
