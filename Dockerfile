# rgenima: R-GenIMA as a BIDS-App (T1w MRI + SNP genotypes -> Alzheimer's disease stage).
#
#   docker build -t rgenima .                                  # CUDA PyTorch, no FreeSurfer (~ light)
#   docker build -t rgenima:fs --build-arg WITH_FREESURFER=1 .  # with FreeSurfer 7.4.1 for recon-all
#   docker run --rm --gpus all -v /data/bids:/data:ro -v /data/out:/out rgenima /data /out participant ...
#
# Build arguments (all optional; docs/containers.md explains each):
#   TORCH_VERSION    torch release (default 2.13.0: from PyPI that is the CUDA 12 build; the host needs
#                    only the NVIDIA driver)
#   TORCH_INDEX_URL  another wheel index for torch, e.g. https://download.pytorch.org/whl/cu126
#   PIP_EXTRA        extra pip options for every install; offline builds use
#                    "--no-index --find-links /wheels" with a wheelhouse mounted at /wheels
#                    (scripts/build_image_here.sh does this with podman)
#   WITH_FREESURFER  1: download FreeSurfer (FREESURFER_URL) and install it pruned to what recon-all needs
#   MODEL_BUNDLE     a trained model bundle folder inside the build context (models/<name> as written by
#                    'rgenima ... group --train'); baked into /opt/rgenima/model and used when --model is not given
#   IMAGE_TAG        the name:tag recorded as GeneratedBy.Container.Tag in the outputs
#   SOURCE_URL       the source repository's URL for the OCI source/documentation labels (default empty:
#                    no published repository yet)
#   VCS_REF          the commit built (OCI revision label)
# Nothing is downloaded when the container runs: it runs offline, read-only and as any user.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# ---- stage 1: the rgenima wheel, and the model bundle to bake (if any) -------------------------------
FROM ${PYTHON_IMAGE} AS build
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
ARG PIP_EXTRA=""
ARG MODEL_BUNDLE=""
WORKDIR /src
COPY . /src
# hadolint ignore=SC2086
RUN python -m pip wheel --no-cache-dir --no-deps ${PIP_EXTRA} -w /dist /src \
 && mkdir -p /bundle \
 && if [ -n "${MODEL_BUNDLE}" ]; then \
      if [ ! -f "/src/${MODEL_BUNDLE}/rgenima.json" ]; then \
        echo "MODEL_BUNDLE=${MODEL_BUNDLE}: no rgenima.json there; give a bundle folder (models/<name>) inside the build context" >&2; \
        exit 1; \
      fi; \
      cp -a "/src/${MODEL_BUNDLE}/." /bundle/; \
    fi \
 && chmod -R a+rX /bundle

# ---- stage 2: the image --------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE}
SHELL ["/bin/bash", "-o", "pipefail", "-c"]

# (arguments that change often, such as VCS_REF, are declared at the end: an ARG whose value changes
# invalidates the layer cache of every RUN after it)
ARG TORCH_VERSION=2.13.0
ARG TORCH_INDEX_URL=""
ARG PIP_EXTRA=""
ARG WITH_FREESURFER=0
ARG FREESURFER_URL=https://surfer.nmr.mgh.harvard.edu/pub/dist/freesurfer/7.4.1/freesurfer-linux-ubuntu22_amd64-7.4.1.tar.gz

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# FreeSurfer 7.x (optional): the tools recon-all calls, pruned of GUIs, MATLAB, sample subjects and atlases
# that recon-all does not read. FreeSurfer needs a license at run time (--fs-license-file or FS_LICENSE).
# hadolint ignore=DL3008
RUN if [ "${WITH_FREESURFER}" = "1" ]; then \
      apt-get update \
      && apt-get install -y --no-install-recommends bc ca-certificates curl libgomp1 libxmu6 libxt6 perl tcsh file \
      && curl -fsSL --retry 5 "${FREESURFER_URL}" | tar -xz -C /opt \
           --exclude='freesurfer/diffusion' --exclude='freesurfer/docs' --exclude='freesurfer/fsfast' \
           --exclude='freesurfer/lib/cuda' --exclude='freesurfer/lib/qt' --exclude='freesurfer/matlab' \
           --exclude='freesurfer/mni/share/man' --exclude='freesurfer/python/include' \
           --exclude='freesurfer/python/share' --exclude='freesurfer/subjects/bert' \
           --exclude='freesurfer/subjects/cvs_avg35*' --exclude='freesurfer/subjects/fsaverage_sym' \
           --exclude='freesurfer/subjects/fsaverage3' --exclude='freesurfer/subjects/fsaverage4' \
           --exclude='freesurfer/subjects/lh.EC_average' --exclude='freesurfer/subjects/rh.EC_average' \
           --exclude='freesurfer/subjects/sample-*' --exclude='freesurfer/trctrain' \
           --exclude='freesurfer/average/mult-comp-cor' --exclude='freesurfer/average/Yeo_Brainmapping_Atlas*' \
           --exclude='freesurfer/average/samseg' --exclude='freesurfer/bin/freeview*' --exclude='freesurfer/bin/fsfast*' \
      && test -x /opt/freesurfer/bin/recon-all \
      && apt-get purge -y curl && apt-get autoremove -y && rm -rf /var/lib/apt/lists/*; \
    else \
      echo "FreeSurfer not installed (WITH_FREESURFER=${WITH_FREESURFER}): rgenima reuses FreeSurfer subjects given with --fs-subjects-dir"; \
    fi
ENV FREESURFER_HOME=/opt/freesurfer \
    FSF_OUTPUT_FORMAT=nii.gz \
    FS_OVERRIDE=0 \
    FIX_VERTEX_AREA="" \
    MNI_DIR=/opt/freesurfer/mni \
    MNI_DATAPATH=/opt/freesurfer/mni/data \
    MNI_PERL5LIB=/opt/freesurfer/mni/share/perl5 \
    PERL5LIB=/opt/freesurfer/mni/share/perl5 \
    MINC_BIN_DIR=/opt/freesurfer/mni/bin \
    MINC_LIB_DIR=/opt/freesurfer/mni/lib \
    LOCAL_DIR=/opt/freesurfer/local \
    PATH=/opt/freesurfer/bin:/opt/freesurfer/mni/bin:/opt/freesurfer/tktools:${PATH}

# PyTorch first and on its own layer (the CUDA wheels bring their CUDA runtime), then DeepSpeed (it builds
# against the installed torch, hence no build isolation; its CUDA ops are compiled just in time only when
# used, and rgenima's presets need none), then rgenima with every dependency at the pinned versions.
COPY scripts/container-constraints.txt /opt/rgenima/constraints.txt
# hadolint ignore=SC2086
RUN python -m pip install ${PIP_EXTRA} -c /opt/rgenima/constraints.txt ${TORCH_INDEX_URL:+--index-url ${TORCH_INDEX_URL}} "torch==${TORCH_VERSION}"
# hadolint ignore=SC2086
RUN python -m pip install ${PIP_EXTRA} -c /opt/rgenima/constraints.txt setuptools wheel \
 && python -m pip install ${PIP_EXTRA} -c /opt/rgenima/constraints.txt --no-build-isolation deepspeed
# the dependencies (exactly the pinned set) on their own layer: a change of rgenima's code rebuilds only the next one
# hadolint ignore=SC2086
RUN python -m pip install ${PIP_EXTRA} -r /opt/rgenima/constraints.txt
COPY --from=build /dist /tmp/dist
# hadolint ignore=SC2086,DL3013
RUN python -m pip install ${PIP_EXTRA} --no-deps /tmp/dist/rgenima-*.whl \
 && rm -rf /tmp/dist \
 && python -m pip check \
 && rgenima --version && bids-validator-deno --version \
 && python -c "import torch, transformers, deepspeed; print('torch', torch.__version__, 'cuda', torch.version.cuda)"

# A non-root user. HOME and every cache live under /home/rgenima (world-writable, like /tmp, so that any
# --user works); when they cannot be written (docker run --read-only, Apptainer's read-only image) rgenima
# moves them to <work dir>/.cache. Nothing is fetched from a model hub: models come from local folders.
RUN useradd --create-home --home-dir /home/rgenima --uid 1000 --user-group --shell /bin/bash rgenima \
 && mkdir -p /home/rgenima/.cache /opt/rgenima/model \
 && chmod 1777 /home/rgenima /home/rgenima/.cache
ENV HOME=/home/rgenima \
    XDG_CACHE_HOME=/home/rgenima/.cache \
    HF_HOME=/home/rgenima/.cache/huggingface \
    TORCH_HOME=/home/rgenima/.cache/torch \
    MPLCONFIGDIR=/home/rgenima/.cache/matplotlib \
    TRITON_CACHE_DIR=/home/rgenima/.cache/triton \
    MPLBACKEND=Agg \
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1 \
    HF_DATASETS_OFFLINE=1 \
    HF_HUB_DISABLE_TELEMETRY=1 \
    DO_NOT_TRACK=1 \
    NIPYPE_NO_ET=1

ARG RGENIMA_VERSION=0.1.0
ARG MODEL_BUNDLE=""
ARG IMAGE_TAG=rgenima:${RGENIMA_VERSION}
# SOURCE_URL: where the source of this build can be fetched (the repository's URL, e.g. --build-arg
# SOURCE_URL=https://git.example.org/rgenima). rgenima has no published repository yet, so the default is empty
# and so are the source and documentation labels; VCS_REF: the commit built (scripts/build_image_here.sh gives it).
ARG SOURCE_URL=""
ARG VCS_REF=unknown
# The build's identity, also as a file. This RUN also keeps the layer cache honest: its cache key holds the values
# of these arguments, whereas podman/buildah (1.28) reuse a cached LABEL or ENV layer whose arguments changed.
RUN printf 'version=%s\nrevision=%s\ntag=%s\nsource=%s\nfreesurfer=%s\nmodel_bundle=%s\n' "${RGENIMA_VERSION}" \
      "${VCS_REF}" "${IMAGE_TAG}" "${SOURCE_URL}" "${WITH_FREESURFER}" "${MODEL_BUNDLE}" > /opt/rgenima/build-info
LABEL org.opencontainers.image.title="rgenima" \
      org.opencontainers.image.description="R-GenIMA BIDS-App: T1w MRI ROIs and SNP genotypes in a multimodal LLM classifying Alzheimer's disease stage" \
      org.opencontainers.image.version="${RGENIMA_VERSION}" \
      org.opencontainers.image.source="${SOURCE_URL}" \
      org.opencontainers.image.revision="${VCS_REF}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.documentation="${SOURCE_URL:+${SOURCE_URL}/blob/main/docs/containers.md}" \
      org.rgenima.freesurfer="${WITH_FREESURFER}" \
      org.rgenima.model-bundle="${MODEL_BUNDLE}"
ENV RGENIMA_CONTAINER_TAG=${IMAGE_TAG} \
    RGENIMA_DEFAULT_MODEL=${MODEL_BUNDLE:+/opt/rgenima/model}

# The baked model bundle (an empty folder when MODEL_BUNDLE is not given), readable by any user.
COPY --from=build /bundle /opt/rgenima/model

USER 1000:1000
WORKDIR /home/rgenima
ENTRYPOINT ["rgenima"]
CMD ["--help"]
