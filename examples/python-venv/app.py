"""A tiny application with one third-party dependency."""
import six


def greeting():
    return six.ensure_text(b"hello from a slim runtime")


if __name__ == "__main__":
    print(greeting())
