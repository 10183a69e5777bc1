package main

import "fmt"

func greeting() string { return "hello from a scratch image" }

func main() { fmt.Println(greeting()) }
