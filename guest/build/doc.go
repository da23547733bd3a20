// Package build builds images from a Dockerfile the way Docker's classic
// builder does: each instruction is a step on the image the previous one
// made; RUN runs in a container of the engine and COPY writes into one,
// and their changes become layers (engine.Commit); the other instructions
// change the configuration only. The context is a directory the caller
// has unpacked (from the tar a client sent, .dockerignore applied).
package build
