import unittest

import app


class GreetingTest(unittest.TestCase):
    def test_greeting(self):
        self.assertIn("slim", app.greeting())


if __name__ == "__main__":
    unittest.main()
