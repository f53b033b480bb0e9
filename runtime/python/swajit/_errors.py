"""swajit.Error for failures found in Python, built exactly as the extension builds those of the C++ library."""
from ._swajit import Error, ErrorCode


def make_error(code: ErrorCode, message: str) -> Error:
    """An Error with `.code` set and the C++ library's message form, "<code name>: <message>"."""
    error = Error(f"{code.name.replace('_', ' ')}: {message}")
    error.code = code
    return error


def invalid_argument(message: str) -> Error:
    return make_error(ErrorCode.invalid_argument, message)


def unsupported(message: str) -> Error:
    return make_error(ErrorCode.unsupported, message)
