// Package share mounts host folders in the VM: a FUSE file system whose
// every operation is an SFTP request to the instance's host process over
// the channel the host opened for that folder (api.Share), and the replay
// of changes made on the host (api.ShareEvent) through the mount, so that
// inotify watchers in the VM and in containers see them as local changes.
package share
