//! MPI launchers spell the rank count `-np N`, a single-dash long flag that clap does not
//! parse. It is rewritten to `--np` before parsing, but only among the options of `run`: the
//! program's own arguments are never touched.

use std::ffi::OsString;

/// Options of `run` that take a separate value, so that the value is not taken for the
/// program.
const OPTIONS_WITH_VALUE: &[&str] = &[
    "-n",
    "--np",
    "--transport",
    "--job-name",
    "--crs",
    "--compress",
    "--full-every",
    "--checkpoint-every",
    "--snapshot-dir",
    "--keep",
    "--checkpoint-timeout",
    "--max-restarts",
    "--hosts",
    "--hostfile",
    "--launcher",
    "--coordinator-addr",
    "--heartbeat",
    "--storage",
    "--mirror",
    "--parity",
    "--spares",
    "--dashboard",
];

/// Where the options of `mpicr run` start in `argv`, if the subcommand is `run`.
pub(crate) fn run_args_start(argv: &[OsString]) -> Option<usize> {
    let index = argv
        .iter()
        .skip(1)
        .position(|a| !a.to_string_lossy().starts_with('-'))?
        + 1;
    (argv[index] == "run").then_some(index + 1)
}

/// Replaces `-np` by `--np` in the options that `start(argv)` says begin the run options.
pub(crate) fn rewrite_np(
    mut argv: Vec<OsString>,
    start: impl Fn(&[OsString]) -> Option<usize>,
) -> Vec<OsString> {
    let Some(mut i) = start(&argv) else {
        return argv;
    };
    while i < argv.len() {
        let arg = argv[i].to_string_lossy().into_owned();
        if arg == "--" || !arg.starts_with('-') {
            break;
        }
        if arg == "-np" {
            argv[i] = "--np".into();
            i += 1;
        } else if let Some(value) = arg.strip_prefix("-np=") {
            argv[i] = format!("--np={value}").into();
        } else if OPTIONS_WITH_VALUE.contains(&arg.as_str()) {
            i += 1;
        }
        i += 1;
    }
    argv
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rewrite(args: &[&str], start: impl Fn(&[OsString]) -> Option<usize>) -> Vec<String> {
        let argv = args.iter().map(OsString::from).collect();
        rewrite_np(argv, start)
            .into_iter()
            .map(|a| a.into_string().unwrap())
            .collect()
    }

    #[test]
    fn only_run_options_are_rewritten() {
        assert_eq!(
            rewrite(&["mpicr", "run", "-np", "2", "prog", "-np"], run_args_start),
            ["mpicr", "run", "--np", "2", "prog", "-np"]
        );
        assert_eq!(
            rewrite(
                &[
                    "mpicr",
                    "run",
                    "--job-name",
                    "-np",
                    "-np=3",
                    "--",
                    "p",
                    "-np"
                ],
                run_args_start
            ),
            [
                "mpicr",
                "run",
                "--job-name",
                "-np",
                "--np=3",
                "--",
                "p",
                "-np"
            ]
        );
        assert_eq!(
            rewrite(&["mpicr", "status", "-np"], run_args_start),
            ["mpicr", "status", "-np"]
        );
        assert_eq!(
            rewrite(&["mpirun", "-np", "4", "a"], |_| Some(1)),
            ["mpirun", "--np", "4", "a"]
        );
        assert_eq!(
            rewrite(
                &[
                    "mpirun",
                    "--compress",
                    "zstd",
                    "--full-every",
                    "4",
                    "-np",
                    "2",
                    "a"
                ],
                |_| Some(1)
            ),
            [
                "mpirun",
                "--compress",
                "zstd",
                "--full-every",
                "4",
                "--np",
                "2",
                "a"
            ]
        );
    }
}
